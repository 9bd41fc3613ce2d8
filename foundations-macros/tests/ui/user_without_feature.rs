use foundations::span_fn;

#[span_fn("dual", user = true)]
fn dual() {}

#[span_fn("dual_async", user = true)]
async fn dual_async() {}

fn main() {
    dual();
    let _ = dual_async();
}
