//! Every minute on an EventBridge schedule: releases contacts whose reply window closed and
//! prunes old dedup records and frames.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use wxkf_aws::lambda::sweep::SweepHandler;
use wxkf_aws::lambda::{init_tracing, Runtime};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let handler = SweepHandler::new(Runtime::from_env().await?);
    run(service_fn(|event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { handler.sweep(event.payload).await }
    }))
    .await
}
