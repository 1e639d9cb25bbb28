//! The README's producer: one sync send (`cargo run -p karman-client --example
//! quickstart_producer`). README.md shows the code below verbatim; a test checks it.
#![allow(clippy::print_stdout)]

use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), karman_client::ClientError> {
    let producer = Producer::builder().group("my_producer").build().await?;
    let message = Message::new("TopicTest", "hello").with_tags("TagA");
    let result = producer.send(message).await?;
    println!("sent {} to {}", result.msg_id, result.queue);
    producer.shutdown().await;
    Ok(())
}
