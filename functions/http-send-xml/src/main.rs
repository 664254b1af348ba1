//! `GET|POST …/send_xml`: WeChat's URL verification and message XML.

use lambda_http::{run, service_fn, Error, Request};
use wxkf_aws::lambda::http::HttpHandler;
use wxkf_aws::lambda::{init_tracing, Runtime};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let handler = HttpHandler::new(Runtime::from_env().await?);
    run(service_fn(|request: Request| {
        let handler = handler.clone();
        async move { Ok::<_, Error>(handler.send_xml(request).await) }
    }))
    .await
}
