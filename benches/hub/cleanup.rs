//! Cleanup with lapin (the Bus trait has no delete): the queues and exchanges a case declared are
//! deleted afterwards.

use kaigo_hub::bus::Topology;

pub(crate) async fn cleanup(
    url: &str,
    t: &Topology,
    recipients: &[String],
) -> Result<(usize, usize), String> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| format!("cleanup connection: {e}"))?;
    let mut ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    let queues: Vec<String> = t
        .queues()
        .into_iter()
        .map(|q| q.name)
        .chain(recipients.iter().map(|r| t.out_queue(r)))
        .collect();
    let (mut q_ok, mut e_ok, mut errors) = (0, 0, Vec::new());
    for q in &queues {
        match ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            Ok(_) => q_ok += 1,
            Err(e) => {
                errors.push(format!("queue {q}: {e}"));
                ch = conn.create_channel().await.map_err(|e| e.to_string())?;
            }
        }
    }
    for x in t.exchanges() {
        match ch
            .exchange_delete(x.name.as_str().into(), ExchangeDeleteOptions::default())
            .await
        {
            Ok(()) => e_ok += 1,
            Err(e) => {
                errors.push(format!("exchange {}: {e}", x.name));
                ch = conn.create_channel().await.map_err(|e| e.to_string())?;
            }
        }
    }
    let _ = conn.close(200, "OK".into()).await;
    if errors.is_empty() {
        Ok((q_ok, e_ok))
    } else {
        Err(errors.join("; "))
    }
}

pub(crate) async fn cleanup_report(url: &str, t: &Topology, recipients: &[String]) {
    match cleanup(url, t, recipients).await {
        Ok((q, e)) => println!(
            "  cleanup: deleted {q} queues and {e} exchanges under `{}.`",
            t.prefix
        ),
        Err(e) => println!("  cleanup under `{}.` FAILED: {e}", t.prefix),
    }
}
