use foundations::span_fn;

#[span_fn("unknown", sampled = true)]
fn unknown_option() {}

#[span_fn("second_name", "again")]
fn two_names() {}

fn main() {
    unknown_option();
    two_names();
}
