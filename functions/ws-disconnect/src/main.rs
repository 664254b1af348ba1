//! `$disconnect`: removes exactly the closed connection.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use wxkf_aws::lambda::websocket::WebSocketHandler;
use wxkf_aws::lambda::{init_tracing, Runtime};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let handler = WebSocketHandler::new(Runtime::from_env().await?);
    run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let handler = handler.clone();
            async move { Ok::<_, Error>(handler.disconnect(event.payload).await) }
        },
    ))
    .await
}
