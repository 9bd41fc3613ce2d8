use foundations::span_fn;

#[span_fn(42)]
fn number_name() {}

#[span_fn(b"bytes")]
fn byte_string_name() {}

#[span_fn(format!("dynamic"))]
fn macro_name() {}

fn main() {
    number_name();
    byte_string_name();
    macro_name();
}
