//! `karman admin <subcommand>`: mqadmin's subcommands, names and short options (spec
//! semantics.md §10), over `karman_client::Admin`. Each subcommand prints a compact aligned
//! table (or `--json`: one JSON document) and exits 0; a failure is one line on stderr
//! saying what went wrong and what to do, and exit code 1 (2 for bad arguments).
//!
//! The requests each subcommand sends are those of spec remoting.md §8.5; this module only
//! parses, calls the client and prints.

mod broker;
mod group;
mod message;
mod out;
mod topic;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use karman_client::admin::{Admin, NoRouteCause};
use karman_client::{ClientConfig, ClientError};

use crate::ConfigProblem;
pub use out::Out;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// NameServer address(es), `;`-separated (default: the NAMESRV_ADDR variable).
    #[arg(
        short = 'n',
        long = "namesrvAddr",
        env = "NAMESRV_ADDR",
        global = true,
        value_name = "ADDRS"
    )]
    namesrv_addr: Option<String>,

    /// Print one JSON document instead of tables, for scripts.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: AdminCommand,
}

/// The subcommands, named exactly as mqadmin's.
#[derive(Debug, Subcommand)]
#[command(rename_all = "camelCase")]
enum AdminCommand {
    /// Create or update a topic on one broker (-b) or on every master of a cluster (-c).
    UpdateTopic(topic::UpdateTopicArgs),
    /// Delete a topic from a cluster's brokers and from the NameServers.
    DeleteTopic(topic::DeleteTopicArgs),
    /// List every topic the NameServer knows (-c: with cluster and consumer groups).
    TopicList(topic::TopicListArgs),
    /// Show a topic's route (JSON; -l: a table).
    TopicRoute(topic::TopicRouteArgs),
    /// Per queue of a topic: min offset, max offset, time of the last message.
    TopicStatus(topic::TopicStatusArgs),
    /// Brokers per cluster: address, version, TPS in and out, disk use.
    ClusterList(broker::ClusterListArgs),
    /// A broker's runtime counters.
    BrokerStatus(broker::BrokerStatusArgs),
    /// Create or update a subscription (consumer) group.
    UpdateSubGroup(group::UpdateSubGroupArgs),
    /// Delete a subscription group (and with -c, its retry and DLQ topics).
    DeleteSubGroup(group::DeleteSubGroupArgs),
    /// A group's progress per queue (offsets and lag); without -g, a summary of all groups.
    ConsumerProgress(group::ConsumerProgressArgs),
    /// The live clients of a consumer group and their subscriptions.
    ConsumerConnection(group::ConsumerConnectionArgs),
    /// The live clients of a producer group.
    ProducerConnection(group::ProducerConnectionArgs),
    /// Move a group's offsets to a time (or an offset), without restarting its clients.
    ResetOffsetByTime(group::ResetOffsetByTimeArgs),
    /// Show a message by its offset message id (or, with -t, its client message id).
    QueryMsgById(message::QueryMsgByIdArgs),
    /// Find messages by key (KEYS) through the index.
    QueryMsgByKey(message::QueryMsgByKeyArgs),
    /// Find a message by its client message id (UNIQ_KEY) through the index.
    QueryMsgByUniqueKey(message::QueryMsgByUniqueKeyArgs),
    /// Show the message at a queue offset.
    QueryMsgByOffset(message::QueryMsgByOffsetArgs),
    /// Send one message.
    SendMessage(message::SendMessageArgs),
    /// Read messages from a topic or one queue, without committing any offset.
    ConsumeMessage(message::ConsumeMessageArgs),
    /// Print every message of a topic in a time range.
    PrintMsg(message::PrintMsgArgs),
    /// Show a broker's configuration.
    GetBrokerConfig(broker::GetBrokerConfigArgs),
    /// Change one broker setting at runtime.
    UpdateBrokerConfig(broker::UpdateBrokerConfigArgs),
    /// Take write permission away from a broker on every NameServer of -n.
    WipeWritePerm(broker::WritePermArgs),
    /// Give write permission back to a broker on every NameServer of -n.
    AddWritePerm(broker::WritePermArgs),
    /// Create or update a NameServer KV setting.
    UpdateKvConfig(broker::UpdateKvConfigArgs),
    /// Delete a NameServer KV setting.
    DeleteKvConfig(broker::DeleteKvConfigArgs),
}

/// What a subcommand works with.
pub struct Ctx<'a> {
    pub admin: &'a Admin,
    /// The NameServer addresses as given (`;`-separated).
    pub namesrv: &'a str,
    pub out: Out,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("namesrv", &self.namesrv)
            .finish_non_exhaustive()
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let namesrv = namesrv_addr(args.namesrv_addr.as_deref())?;
    let config = ClientConfig {
        namesrv_addr: namesrv.clone(),
        ..ClientConfig::default()
    };
    let admin = Admin::with_config(config)
        .await
        .context("the admin client could not start")?;
    let mut ctx = Ctx {
        admin: &admin,
        namesrv: &namesrv,
        out: Out::new(args.json),
    };
    let topic = args.command.topic().map(str::to_owned);
    let result = dispatch(&mut ctx, args.command).await;
    let result = match result {
        Err(error) => Err(explain(&ctx, topic.as_deref(), error).await),
        Ok(()) => ctx.out.finish(),
    };
    admin.shutdown().await;
    match result {
        Err(error) if is_broken_pipe(&error) => Ok(()),
        Err(error) => Err(one_line(error)),
        ok => ok,
    }
}

/// The error chain as one line without repeats: client errors already quote their cause,
/// and `{:#}` would print it again. Bad arguments keep their type (exit code 2).
fn one_line(error: anyhow::Error) -> anyhow::Error {
    if error.downcast_ref::<ConfigProblem>().is_some() {
        return error;
    }
    let mut line = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    anyhow::anyhow!(line)
}

async fn dispatch(ctx: &mut Ctx<'_>, command: AdminCommand) -> anyhow::Result<()> {
    use AdminCommand as C;
    match command {
        C::UpdateTopic(a) => topic::update_topic(ctx, a).await,
        C::DeleteTopic(a) => topic::delete_topic(ctx, a).await,
        C::TopicList(a) => topic::topic_list(ctx, a).await,
        C::TopicRoute(a) => topic::topic_route(ctx, a).await,
        C::TopicStatus(a) => topic::topic_status(ctx, a).await,
        C::ClusterList(a) => broker::cluster_list(ctx, a).await,
        C::BrokerStatus(a) => broker::broker_status(ctx, a).await,
        C::UpdateSubGroup(a) => group::update_sub_group(ctx, a).await,
        C::DeleteSubGroup(a) => group::delete_sub_group(ctx, a).await,
        C::ConsumerProgress(a) => group::consumer_progress(ctx, a).await,
        C::ConsumerConnection(a) => group::consumer_connection(ctx, a).await,
        C::ProducerConnection(a) => group::producer_connection(ctx, a).await,
        C::ResetOffsetByTime(a) => group::reset_offset_by_time(ctx, a).await,
        C::QueryMsgById(a) => message::query_msg_by_id(ctx, a).await,
        C::QueryMsgByKey(a) => message::query_msg_by_key(ctx, a).await,
        C::QueryMsgByUniqueKey(a) => message::query_msg_by_unique_key(ctx, a).await,
        C::QueryMsgByOffset(a) => message::query_msg_by_offset(ctx, a).await,
        C::SendMessage(a) => message::send_message(ctx, a).await,
        C::ConsumeMessage(a) => message::consume_message(ctx, a).await,
        C::PrintMsg(a) => message::print_msg(ctx, a).await,
        C::GetBrokerConfig(a) => broker::get_broker_config(ctx, a).await,
        C::UpdateBrokerConfig(a) => broker::update_broker_config(ctx, a).await,
        C::WipeWritePerm(a) => broker::write_perm(ctx, a, false).await,
        C::AddWritePerm(a) => broker::write_perm(ctx, a, true).await,
        C::UpdateKvConfig(a) => broker::update_kv_config(ctx, a).await,
        C::DeleteKvConfig(a) => broker::delete_kv_config(ctx, a).await,
    }
}

impl AdminCommand {
    /// The topic a subcommand is about, to explain a missing route.
    fn topic(&self) -> Option<&str> {
        use AdminCommand as C;
        Some(match self {
            C::TopicRoute(a) => &a.topic,
            C::TopicStatus(a) => &a.topic,
            C::ProducerConnection(a) => &a.topic,
            C::ResetOffsetByTime(a) => &a.topic,
            C::QueryMsgByKey(a) => &a.topic,
            C::QueryMsgByUniqueKey(a) => &a.topic,
            C::QueryMsgByOffset(a) => &a.topic,
            C::SendMessage(a) => &a.topic,
            C::ConsumeMessage(a) => &a.topic,
            C::PrintMsg(a) => &a.topic,
            _ => return None,
        })
    }
}

/// `-n` or NAMESRV_ADDR, each address `host:port`.
fn namesrv_addr(given: Option<&str>) -> anyhow::Result<String> {
    let Some(addrs) = given.map(str::trim).filter(|a| !a.is_empty()) else {
        return Err(ConfigProblem(
            "no NameServer address: pass -n host:port (e.g. -n 127.0.0.1:9876) or set NAMESRV_ADDR"
                .to_owned(),
        )
        .into());
    };
    for addr in addrs.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(ConfigProblem(format!(
                "NameServer address `{addr}` is not host:port (e.g. 127.0.0.1:9876)"
            ))
            .into());
        }
    }
    Ok(addrs.to_owned())
}

/// Turns the client errors a person cannot act on as they are into ones they can: a
/// missing route says which of its causes it is, an unreachable NameServer says so.
async fn explain(ctx: &Ctx<'_>, topic: Option<&str>, error: anyhow::Error) -> anyhow::Error {
    let Some(client_error) = error.chain().find_map(|e| e.downcast_ref::<ClientError>()) else {
        return error;
    };
    let client_error = innermost(client_error);
    let missing_topic = match client_error {
        ClientError::NoRoute { topic, .. } => Some(topic.clone()),
        ClientError::Broker { code, .. }
            if *code == karman_protocol::ResponseCode::TopicNotExist =>
        {
            topic.map(str::to_owned)
        }
        ClientError::Remoting { addr, .. } if ctx.namesrv.split(';').any(|a| a.trim() == addr) => {
            return anyhow::anyhow!(
                "cannot reach the NameServer at {addr} ({}): is it running, and is -n (or NAMESRV_ADDR) right?",
                error.root_cause()
            );
        }
        ClientError::Remoting { addr, .. } => {
            return anyhow::anyhow!(
                "cannot reach the broker at {addr} ({}): is it running? `karman admin clusterList -n {}` lists the brokers the NameServer knows",
                error.root_cause(),
                ctx.namesrv
            );
        }
        _ => None,
    };
    let Some(missing_topic) = missing_topic else {
        return error;
    };
    match ctx.admin.diagnose_no_route(&missing_topic).await {
        Ok(cause) => anyhow::anyhow!(no_route_message(&missing_topic, ctx.namesrv, &cause)),
        Err(_) => error,
    }
}

fn innermost(error: &ClientError) -> &ClientError {
    match error {
        ClientError::SendFailed { last, .. } => innermost(last),
        other => other,
    }
}

/// "No route info of this topic", and which of its causes it is.
pub fn no_route_message(topic: &str, namesrv: &str, cause: &NoRouteCause) -> String {
    if let Some(group) = topic.strip_prefix("%RETRY%")
        && !matches!(cause, NoRouteCause::NoBrokerRegistered)
    {
        return format!(
            "No route info of this topic: {topic}: no consumer of group {group} has ever connected \
             (a consumer's first heartbeat creates the group's retry topic)"
        );
    }
    let update_topic = format!("karman admin updateTopic -n {namesrv} -c <cluster> -t {topic}");
    match cause {
        NoRouteCause::NoBrokerRegistered => format!(
            "No route info of this topic: {topic}: no broker is registered with the NameServer at {namesrv}; \
             start a broker with namesrvAddr={namesrv} (or check that it can reach this NameServer)"
        ),
        NoRouteCause::NotRegistered { brokers } => format!(
            "No route info of this topic: {topic}: broker {} has the topic but has not registered it with the NameServer at {namesrv}; \
             brokers register every 30 s, so retry shortly, and check the broker's namesrvAddr",
            brokers.join(", ")
        ),
        NoRouteCause::TopicMissing {
            auto_create_on,
            auto_create_off,
            unreachable,
        } => {
            let mut message = format!(
                "No route info of this topic: {topic}: the topic does not exist on any registered broker"
            );
            if !auto_create_off.is_empty() {
                message.push_str(&format!(
                    " and autoCreateTopicEnable is off on {}; create it with `{update_topic}`",
                    auto_create_off.join(", ")
                ));
            } else if !auto_create_on.is_empty() {
                message.push_str(&format!(
                    "; autoCreateTopicEnable is on ({}), so the first message sent to it creates it, or create it with `{update_topic}`",
                    auto_create_on.join(", ")
                ));
            } else {
                message.push_str(&format!("; create it with `{update_topic}`"));
            }
            if !unreachable.is_empty() {
                message.push_str(&format!(
                    " (broker {} did not answer)",
                    unreachable.join(", ")
                ));
            }
            message
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A bad argument combination, exit code 2.
pub fn bad_args(message: impl Into<String>) -> anyhow::Error {
    ConfigProblem(message.into()).into()
}

/// mqadmin's boolean option values (`-o true`): true or false, any case.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got `{value}`")),
    }
}

/// The master addresses of a cluster, or an error that lists the clusters there are.
pub async fn cluster_masters(admin: &Admin, cluster: &str) -> anyhow::Result<Vec<String>> {
    let info = admin.cluster_info().await?;
    let masters = admin.cluster_masters(cluster).await?;
    if masters.is_empty() {
        let known: Vec<&str> = info.cluster_addr_table.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none: no broker is registered".to_owned()
        } else {
            known.join(", ")
        };
        return Err(anyhow::anyhow!(
            "cluster {cluster} has no master broker registered with the NameServer (clusters known: {known})"
        ));
    }
    Ok(masters)
}

/// `-b addr` or every master of `-c cluster`.
pub async fn target_brokers(
    admin: &Admin,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    match (broker_addr, cluster) {
        (Some(addr), _) => Ok(vec![addr.trim().to_owned()]),
        (None, Some(cluster)) => cluster_masters(admin, cluster.trim()).await,
        (None, None) => Err(bad_args("pass -b brokerAddr or -c clusterName")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_address_must_be_host_and_port() {
        assert!(namesrv_addr(None).is_err());
        assert!(namesrv_addr(Some("  ")).is_err());
        assert!(namesrv_addr(Some("localhost")).is_err());
        assert!(namesrv_addr(Some("10.0.0.1:9876;oops")).is_err());
        assert_eq!(
            namesrv_addr(Some("10.0.0.1:9876;10.0.0.2:9876")).unwrap(),
            "10.0.0.1:9876;10.0.0.2:9876"
        );
    }

    #[test]
    fn no_route_message_names_the_cause() {
        let none = no_route_message("T", "n:1", &NoRouteCause::NoBrokerRegistered);
        assert!(none.starts_with("No route info of this topic: T"));
        assert!(none.contains("no broker is registered"), "{none}");
        let off = no_route_message(
            "T",
            "n:1",
            &NoRouteCause::TopicMissing {
                auto_create_on: vec![],
                auto_create_off: vec!["broker-a".into()],
                unreachable: vec![],
            },
        );
        assert!(
            off.contains("autoCreateTopicEnable is off on broker-a"),
            "{off}"
        );
        assert!(off.contains("updateTopic"), "{off}");
        let retry = no_route_message(
            "%RETRY%g",
            "n:1",
            &NoRouteCause::TopicMissing {
                auto_create_on: vec!["broker-a".into()],
                auto_create_off: vec![],
                unreachable: vec![],
            },
        );
        assert!(retry.contains("no consumer of group g"), "{retry}");
    }

    #[test]
    fn booleans_are_true_or_false() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("false"), Ok(false));
        assert!(parse_bool("yes").is_err());
    }
}
