use foundations::span_fn;

#[span_fn(user = true)]
fn only_options() {}

fn main() {
    only_options();
}
