//! Writes a file with create / append / flush, reads it back, lists it and
//! cleans up. Runs against Azurite on its default port, or against the account
//! in `AZURE_STORAGE_CONNECTION_STRING`.

use adls_rest::{Checksums, Client, CreateOptions, FlushOptions, ListOptions};
use bytes::Bytes;

#[tokio::main]
async fn main() -> Result<(), adls_rest::Error> {
    let conn = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        .unwrap_or_else(|_| "UseDevelopmentStorage=true".to_string());
    // One client per account for the life of the process: clones share its pool.
    let client = Client::from_connection_string(&conn)?.build()?;
    let fs = client.filesystem("adls-rest-quickstart")?;
    fs.create_if_not_exists().await?;

    // Nothing is visible until the flush; then the file is exactly [0, 18).
    let file = fs.file("year=2024/month=01/batch-0001.ndjson")?;
    file.create(&CreateOptions::default()).await?;
    let first = Bytes::from_static(b"{\"id\":1}\n");
    let second = Bytes::from_static(b"{\"id\":2}\n");
    // Content-MD5 on each append: the service refuses a damaged piece.
    let md5 = Checksums {
        md5: true,
        crc64: false,
    };
    file.append(0, first.clone(), md5).await?;
    file.append(first.len() as u64, second.clone(), md5).await?;
    let end = (first.len() + second.len()) as u64;
    let close = FlushOptions {
        close: true,
        ..Default::default()
    };
    let flushed = file.flush(end, &close).await?;
    println!("committed {} bytes", flushed.content_length);

    print!("{}", String::from_utf8_lossy(&file.read().await?));
    let everything = ListOptions {
        recursive: true,
        ..Default::default()
    };
    for item in fs.list_all(everything).await? {
        println!("{} ({} bytes)", item.name, item.content_length);
    }
    fs.delete().await?;
    Ok(())
}
