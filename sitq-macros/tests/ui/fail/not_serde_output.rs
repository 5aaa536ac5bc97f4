struct Report;

#[sitq::task]
async fn build() -> Report {
    Report
}

#[sitq::task]
async fn try_build() -> Result<Report, String> {
    Ok(Report)
}

fn main() {}
