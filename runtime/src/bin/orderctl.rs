//! Operator commands: create the topics, register the schemas, read any topic as JSON lines
//! (Avro event topics are decoded through the schema registry, like Confluent's
//! kafka-avro-console-consumer), and show the sagas that are stuck.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use runtime::kafka;
use schema_registry_converter::{
    async_impl::{avro::AvroDecoder, schema_registry::post_schema},
    schema_registry_common::{SchemaType, SuppliedSchema},
};
use serde_json::{Value as Json, json};
use std::{io::Write, time::Duration};

#[derive(Parser)]
#[command(name = "orderctl", about = "Operate the order system's Kafka topics and schemas")]
struct Cli {
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092", global = true)]
    brokers: String,
    #[arg(long, env = "SCHEMA_REGISTRY_URL", default_value = "http://127.0.0.1:8081", global = true)]
    registry: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create every command, event, dead-letter and rejection topic (existing ones are kept).
    CreateTopics {
        #[arg(long, env = "PARTITIONS", default_value_t = kafka::DEFAULT_PARTITIONS)]
        partitions: i32,
    },
    /// Register each schemas/<topic>.avsc as subject <topic>-value.
    RegisterSchemas,
    /// Print a topic's records as JSON lines (topic, partition, offset, key, headers, value).
    Consume {
        /// Topic to read, e.g. order.events or order.commands.dlq.
        topic: String,
        /// Keep waiting for new records instead of stopping at the end of the topic.
        #[arg(long, short)]
        follow: bool,
        /// Stop after this many records.
        #[arg(long, short = 'n')]
        max: Option<u64>,
        /// Only records with this key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Orders that have not moved for a while: who and what each waits on, since when, its
    /// deadline and the lag of the loops on its path; and parked (undecodable) events.
    Stuck {
        /// Orders that have not moved for longer than this (30s, 5m, 1h, 1500ms).
        #[arg(long, default_value = "30s")]
        older_than: String,
        /// order-svc's HTTP address.
        #[arg(long, env = "ORDER_SVC_URL", default_value = "http://127.0.0.1:8001")]
        order_svc: String,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Bearer token, when order-svc runs with API_TOKEN_READS=1.
        #[arg(long, env = "API_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    kafka::limit_avro_allocation();
    match cli.command {
        Command::CreateTopics { partitions } => {
            kafka::ensure_all(&cli.brokers, partitions).await?;
            for topic in kafka::all_topics(partitions) {
                println!("{}\t{} partitions", topic.name, topic.partitions);
            }
        }
        Command::RegisterSchemas => {
            let settings = kafka::registry_settings(&cli.registry)?;
            for (topic, schema) in contracts::EVENT_SCHEMAS {
                let subject = contracts::value_subject(topic);
                let registered = post_schema(&settings, subject.clone(), SuppliedSchema::new(None, SchemaType::Avro, schema.to_string()))
                    .await
                    .with_context(|| format!("registering {subject}"))?;
                println!("{subject}\tid {}", registered.id);
            }
        }
        Command::Consume { topic, follow, max, key } => consume(&cli.brokers, &cli.registry, &topic, follow, max, key.as_deref()).await?,
        Command::Stuck { older_than, order_svc, json, token } => stuck(&order_svc, &older_than, json, token.as_deref()).await?,
    }
    Ok(())
}

async fn consume(brokers: &str, registry: &str, topic: &str, follow: bool, max: Option<u64>, key_filter: Option<&str>) -> Result<()> {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "orderctl-consume")
        .set("enable.auto.commit", "false")
        .create()?;
    let partitions = kafka::partition_count(&consumer, topic)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = Vec::new();
    for partition in 0..partitions {
        let (low, high) = kafka::watermarks(&consumer, topic, partition)?;
        assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        if high > low {
            remaining.push((partition, high));
        }
    }
    consumer.assign(&assignment)?;
    let decoder = AvroDecoder::new(kafka::registry_settings(registry)?);
    let mut printed = 0u64;
    let mut stdout = std::io::stdout().lock();
    while follow || !remaining.is_empty() {
        let message = match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
            Ok(message) => message?,
            Err(_) if follow => continue,
            Err(_) => anyhow::bail!("no record arrived for 10 s though the topic end was not reached"),
        };
        remaining.retain(|(partition, high)| !(*partition == message.partition() && message.offset() + 1 >= *high));
        let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned());
        if key_filter.is_some_and(|wanted| key.as_deref() != Some(wanted)) {
            continue;
        }
        let headers: serde_json::Map<String, Json> = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map_or(Json::Null, |v| Json::String(String::from_utf8_lossy(v).into_owned()))))
                    .collect()
            })
            .unwrap_or_default();
        let (schema_id, value) = decode_value(&decoder, message.payload()).await;
        let line = json!({
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp": message.timestamp().to_millis(),
            "key": key,
            "headers": headers,
            "schema_id": schema_id,
            "value": value,
        });
        if writeln!(stdout, "{line}").is_err() {
            break; // stdout closed (e.g. piped into head)
        }
        printed += 1;
        if max.is_some_and(|max| printed >= max) {
            break;
        }
    }
    Ok(())
}

/// Confluent-framed Avro becomes Avro's JSON form (the payload union as `{"<record>": {...}}`);
/// anything else is shown as JSON if it parses, else as text.
async fn decode_value(decoder: &AvroDecoder, payload: Option<&[u8]>) -> (Option<u32>, Json) {
    let Some(bytes) = payload else { return (None, Json::Null) };
    if let Ok((schema_id, schema, value)) = kafka::read_with_writer_schema(decoder, bytes).await {
        return (Some(schema_id), avro_to_json(value, &schema.parsed));
    }
    match serde_json::from_slice(bytes) {
        Ok(json) => (None, json),
        Err(_) => (None, Json::String(String::from_utf8_lossy(bytes).into_owned())),
    }
}

fn avro_to_json(value: apache_avro::types::Value, schema: &apache_avro::Schema) -> Json {
    use apache_avro::types::Value;
    let branches = kafka::payload_branches(schema).unwrap_or_default();
    let Value::Record(fields) = value else { return Json::try_from(value).unwrap_or(Json::Null) };
    let mut object = serde_json::Map::new();
    for (name, field) in fields {
        let json = match (name.as_str(), field) {
            ("payload", Value::Union(index, inner)) => {
                let branch = branches.get(index as usize).cloned().unwrap_or_else(|| format!("#{index}"));
                json!({ branch: Json::try_from(*inner).unwrap_or(Json::Null) })
            }
            (_, other) => Json::try_from(other).unwrap_or(Json::Null),
        };
        object.insert(name, json);
    }
    Json::Object(object)
}

/// `GET /sagas/stuck` of order-svc, as a table (or the JSON as it came).
async fn stuck(order_svc: &str, older_than: &str, as_json: bool, token: Option<&str>) -> Result<()> {
    if !older_than.chars().all(|c| c.is_ascii_alphanumeric()) {
        anyhow::bail!("--older-than {older_than:?} is not a duration like 30s, 5m, 1h or 1500ms");
    }
    let url = format!("{}/sagas/stuck?older_than={older_than}", order_svc.trim_end_matches('/'));
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let report: Json = response.json().await.with_context(|| format!("GET {url}: not JSON"))?;
    if !status.is_success() {
        anyhow::bail!("GET {url}: {status}: {}", report["error"].as_str().unwrap_or_default());
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{report}")?;
        return Ok(());
    }
    let orders = report["orders"].as_array().cloned().unwrap_or_default();
    let now = report["now"].as_i64().unwrap_or(0);
    writeln!(out, "{} order(s) not moved for more than {older_than}", orders.len())?;
    if !orders.is_empty() {
        writeln!(out, "{:<38} {:<15} {:<14} {:>9} {:>10}  step; loop lags", "ORDER", "STATUS", "WAITING ON", "AGE", "DEADLINE")?;
    }
    for order in &orders {
        let seconds = |ms: i64| format!("{:.1}s", ms as f64 / 1000.0);
        let deadline =
            order["deadline"].as_i64().map_or("-".to_string(), |at| if at <= now { "passed".into() } else { format!("in {}", seconds(at - now)) });
        let lags: Vec<String> = order["loops"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| format!("{}={}", l["group"].as_str().unwrap_or("?"), l["lag"].as_i64().map_or("?".to_string(), |lag| lag.to_string())))
            .collect();
        let parked = order["parked_events"].as_i64().filter(|n| *n > 0).map_or(String::new(), |n| format!("; {n} parked event(s)"));
        writeln!(
            out,
            "{:<38} {:<15} {:<14} {:>9} {:>10}  {}; {}{parked}",
            order["order_id"].as_str().unwrap_or("?"),
            order["status"].as_str().unwrap_or("?"),
            order["waiting_on"].as_str().unwrap_or("?"),
            seconds(order["age_ms"].as_i64().unwrap_or(0)),
            deadline,
            order["step"].as_str().unwrap_or(""),
            lags.join(" "),
        )?;
    }
    let parked = report["parked_events"].as_array().cloned().unwrap_or_default();
    if !parked.is_empty() {
        writeln!(out, "\n{} parked event(s) (scripts/consume <topic>.dlq shows their bytes and headers)", parked.len())?;
        for event in &parked {
            writeln!(
                out,
                "{}/{}@{} key {} by {}: {} ({})",
                event["topic"].as_str().unwrap_or("?"),
                event["partition"],
                event["offset"],
                event["aggregate_id"].as_str().unwrap_or("?"),
                event["reader"].as_str().unwrap_or("?"),
                event["kind"].as_str().unwrap_or("?"),
                event["reason"].as_str().unwrap_or(""),
            )?;
        }
    }
    Ok(())
}
