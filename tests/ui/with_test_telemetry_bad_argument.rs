use foundations::telemetry::{TelemetryContext, TestTelemetryContext};
use foundations::with_test_telemetry;

#[with_test_telemetry(test)]
fn no_argument() {}

#[with_test_telemetry(test)]
fn wrong_type(_ctx: TelemetryContext) {}

#[with_test_telemetry(test)]
fn two_arguments(_ctx: TestTelemetryContext, _extra: u32) {}

fn main() {}
