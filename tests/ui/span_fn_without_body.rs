use foundations::span_fn;

trait Service {
    #[span_fn("declaration")]
    fn handle(&self);
}

fn main() {}
