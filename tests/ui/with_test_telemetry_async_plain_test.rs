use foundations::telemetry::TestTelemetryContext;
use foundations::with_test_telemetry;

#[with_test_telemetry(test)]
async fn async_without_runtime(_ctx: TestTelemetryContext) {}

fn main() {}
