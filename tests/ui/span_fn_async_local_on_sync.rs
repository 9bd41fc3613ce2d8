use foundations::span_fn;

#[span_fn("sync", async_local = true)]
fn sync_fn() {}

fn main() {
    sync_fn();
}
