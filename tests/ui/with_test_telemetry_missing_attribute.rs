use foundations::telemetry::TestTelemetryContext;
use foundations::with_test_telemetry;

#[with_test_telemetry]
fn no_test_attribute(_ctx: TestTelemetryContext) {}

fn main() {}
