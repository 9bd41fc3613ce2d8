use foundations::span_fn;

#[span_fn]
fn no_arguments() {}

#[span_fn()]
fn empty_arguments() {}

fn main() {
    no_arguments();
    empty_arguments();
}
