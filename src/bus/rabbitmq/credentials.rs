//! The user and password in a RabbitMQ URL: taken out for what may be recorded or shown (the
//! process registry, messages), put back from this command's own URL, and the user name read.
//! Must never: leave a password in what `without_credentials` returns.

/// Where the user information of `url` (`amqp://user:password@host…`) is: its byte range, without
/// the `@`, if there is one.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    url[start..end].rfind('@').map(|at| (start, start + at))
}

/// `url` without user and password: what the process registry may record and messages may show.
pub fn without_credentials(url: &str) -> String {
    match userinfo(url) {
        Some((start, at)) => format!("{}{}", &url[..start], &url[at + 1..]),
        None => url.to_string(),
    }
}

/// `url` (recorded without credentials) with the user and password of `from` (this command's own
/// `amqp_url`); as it is when `from` has none, so the broker's default (`guest`) applies.
pub fn with_credentials_of(url: &str, from: Option<&str>) -> String {
    let bare = without_credentials(url);
    let creds = from.and_then(|f| userinfo(f).map(|(s, at)| f[s..at].to_string()));
    match (creds, bare.find("://")) {
        (Some(creds), Some(i)) => format!("{}{creds}@{}", &bare[..i + 3], &bare[i + 3..]),
        _ => bare,
    }
}

/// The user name `url` logs in as (`guest`, the AMQP default, when it names none).
pub fn user_of(url: &str) -> String {
    userinfo(url)
        .map(|(s, at)| url[s..at].split(':').next().unwrap_or("").to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "guest".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_a_url_and_put_back_from_another() {
        let url = "amqp://hub:s3cret@mq.example:5672/%2f?heartbeat=10";
        assert_eq!(
            without_credentials(url),
            "amqp://mq.example:5672/%2f?heartbeat=10"
        );
        assert_eq!(without_credentials("amqp://mq:5672/v"), "amqp://mq:5672/v");
        assert_eq!(
            without_credentials("amqps://u@mq/a@b"),
            "amqps://mq/a@b",
            "an @ in the path is not user information"
        );
        assert_eq!(
            with_credentials_of("amqp://mq:5672/v", Some(url)),
            "amqp://hub:s3cret@mq:5672/v"
        );
        assert_eq!(
            with_credentials_of("amqp://mq:5672/v", Some("amqp://other:5672/%2f")),
            "amqp://mq:5672/v"
        );
        assert_eq!(with_credentials_of("amqp://mq/v", None), "amqp://mq/v");
        assert_eq!(user_of(url), "hub");
        assert_eq!(user_of("amqp://mq/v"), "guest");
    }
}
