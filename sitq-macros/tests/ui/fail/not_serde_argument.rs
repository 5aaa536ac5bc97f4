struct Connection;

#[sitq::task]
async fn ping(connection: Connection, times: u32) {
    let _ = (connection, times);
}

fn main() {}
