//! The link to the broker: one AMQP connection at a time, opened with bounded reach and
//! handshake times, and replaced by a new one on next use when it died (the bus's supervisor).
//! In: the RabbitMQ URL. Out: a live connection (with its generation) and channels on it, for
//! the publishing, declaring and consuming rooms beside this one. Must never: print the broker
//! password (only `broker`, host, port and vhost, appears in messages), or reconnect after
//! `close`.

use super::super::BusError;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long `connect` may take to reach the broker's TCP port.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect` may take for the AMQP handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// After a failed attempt to reconnect, callers within this time get its error at once
/// instead of starting another (no connect storm from every task at once).
const RECONNECT_THROTTLE: Duration = Duration::from_millis(500);

/// The connection to the broker and what replaces it when it dies (the bus's supervisor).
///
/// lapin's own auto-recovery is not used: after a broker restart its reconnect was seen to hang
/// for good (a TCP connection the stopping broker accepted and never answered, and no timeout on
/// the handshake of a recovery), leaving the hub connected to nothing while it looked alive.
/// Instead every user of the link asks [`Link::current`] for a live connection; a dead one is
/// replaced by a new one opened with the same timeouts as the first, consumers subscribe again
/// on it (their unsettled deliveries go back to the queue, as they would with lapin's
/// recovery), and publishes that failed are retried on it.
pub(super) struct Link {
    /// The parsed URL, with its password: used to reconnect, never printed (it is `Debug`).
    uri: AMQPUri,
    /// The connection's name in the management UI.
    name: String,
    /// Where the broker is, e.g. ``127.0.0.1:5672 (vhost `/`)``, for messages (never the credentials).
    pub(super) broker: String,
    /// The connection in use, with its generation (bumped by every replacement).
    current: Mutex<(u64, Arc<Connection>)>,
    /// Held while a replacement is being opened.
    reconnecting: tokio::sync::Mutex<Option<(tokio::time::Instant, BusError)>>,
    pub(super) publisher: tokio::sync::Mutex<Option<Channel>>,
    /// Set by `close`: nothing reconnects any more.
    pub(super) closed: AtomicBool,
}

impl Link {
    /// Connects to `url` (`amqp://user:password@host:5672/%2f`), naming the connection
    /// `connection_name` in the management UI. An unreachable broker fails within seconds with
    /// [`BusError::Unavailable`].
    pub(super) async fn connect(url: &str, connection_name: &str) -> Result<Link, BusError> {
        let uri: AMQPUri = url
            .parse()
            .map_err(|e| BusError::Unavailable(format!("the RabbitMQ URL is not an AMQP URL ({e}); expected amqp://user:password@host:5672/%2f")))?;
        let vhost = if uri.vhost.is_empty() {
            "/"
        } else {
            uri.vhost.as_str()
        };
        let broker = format!(
            "{}:{} (vhost `{vhost}`)",
            uri.authority.host, uri.authority.port
        );
        let conn = Link::open(&uri, connection_name, &broker).await?;
        Ok(Link {
            uri,
            name: connection_name.to_string(),
            broker,
            current: Mutex::new((0, Arc::new(conn))),
            reconnecting: tokio::sync::Mutex::new(None),
            publisher: tokio::sync::Mutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    /// Graceful shutdown: closes the publishing channel and the connection; nothing reconnects
    /// after this.
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(ch) = self.publisher.lock().await.take()
            && ch.status().connected()
            && let Err(e) = ch.close(200, "OK".into()).await
        {
            tracing::debug!(error = %e, "closing the publishing channel");
        }
        let (_, conn) = self.snapshot();
        if conn.status().connected()
            && let Err(e) = conn.close(200, "kaigo-hub shutting down".into()).await
        {
            tracing::debug!(error = %e, broker = %self.broker, "closing the RabbitMQ connection");
        }
    }

    /// Opens a connection: a TCP probe first (lapin alone turns "nothing listens" into minutes
    /// of retries), then the AMQP handshake, each bounded in time.
    async fn open(uri: &AMQPUri, name: &str, broker: &str) -> Result<Connection, BusError> {
        let addr = (uri.authority.host.clone(), uri.authority.port);
        match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_probe)) => {}
            Ok(Err(e)) => {
                return Err(BusError::Unavailable(format!(
                    "cannot reach RabbitMQ at {broker}: {e}; is the broker running (`rabbitmq-server -detached`)?"
                )));
            }
            Err(_) => {
                return Err(BusError::Unavailable(format!(
                    "cannot reach RabbitMQ at {broker}: no answer within {} s",
                    REACH_TIMEOUT.as_secs()
                )));
            }
        }
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Connection::connect_uri(uri.clone(), properties),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(BusError::Unavailable(format!(
                "RabbitMQ at {broker} refused the connection: {e}"
            ))),
            Err(_) => Err(BusError::Unavailable(format!(
                "RabbitMQ at {broker} did not complete the AMQP handshake within {} s; check the user, password and vhost",
                HANDSHAKE_TIMEOUT.as_secs()
            ))),
        }
    }

    fn snapshot(&self) -> (u64, Arc<Connection>) {
        // A poisoned lock only means a task panicked mid-swap of two plain values.
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A live connection and its generation: the current one, or a new one replacing it.
    pub(super) async fn current(&self) -> Result<(u64, Arc<Connection>), BusError> {
        let (n, conn) = self.snapshot();
        if conn.status().connected() {
            return Ok((n, conn));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable(format!(
                "the connection to RabbitMQ at {} was closed by the hub",
                self.broker
            )));
        }
        let mut last_failure = self.reconnecting.lock().await;
        let (n2, conn2) = self.snapshot();
        if n2 != n && conn2.status().connected() {
            return Ok((n2, conn2));
        }
        if let Some((at, e)) = last_failure.as_ref()
            && at.elapsed() < RECONNECT_THROTTLE
        {
            return Err(e.clone());
        }
        match Link::open(&self.uri, &self.name, &self.broker).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *last_failure = None;
                let n = n2 + 1;
                let old = std::mem::replace(
                    &mut *self.current.lock().unwrap_or_else(|p| p.into_inner()),
                    (n, fresh.clone()),
                )
                .1;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        old.close(320, "replaced by a new connection".into()),
                    )
                    .await;
                });
                tracing::warn!(broker = %self.broker, generation = n, "reconnected to RabbitMQ");
                Ok((n, fresh))
            }
            Err(e) => {
                *last_failure = Some((tokio::time::Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    pub(super) async fn channel(&self, what: &str) -> Result<(u64, Channel), BusError> {
        let (n, conn) = self.current().await?;
        conn.create_channel().await.map(|ch| (n, ch)).map_err(|e| {
            BusError::Unavailable(format!(
                "{what}: cannot open a channel to RabbitMQ at {}: {e}",
                self.broker
            ))
        })
    }
}
