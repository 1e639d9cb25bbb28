//! HEART_BEAT body and the subscription types it carries (spec §4.1).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::message::java_string_hash;

/// How a consumer fetches messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumeType {
    /// Pull and lite-pull consumers.
    ConsumeActively,
    /// Push consumers.
    #[default]
    ConsumePassively,
    ConsumePop,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageModel {
    Broadcasting,
    #[default]
    Clustering,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumeFromWhere {
    #[default]
    ConsumeFromLastOffset,
    ConsumeFromFirstOffset,
    ConsumeFromTimestamp,
    ConsumeFromLastOffsetAndFromMinWhenBootFirst,
    ConsumeFromMinOffset,
    ConsumeFromMaxOffset,
}

/// Subscription expression types; absent, null or empty means TAG.
pub mod expression_type {
    pub const TAG: &str = "TAG";
    pub const SQL92: &str = "SQL92";

    pub fn is_tag(kind: Option<&str>) -> bool {
        kind.is_none_or(|k| k.is_empty() || k.eq_ignore_ascii_case(TAG))
    }
}

/// The "match everything" expression.
pub const SUB_ALL: &str = "*";

/// One topic subscription (Java `SubscriptionData`). Fields in alphabetical order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    pub class_filter_mode: bool,
    pub code_set: BTreeSet<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_type: Option<String>,
    pub sub_string: String,
    pub sub_version: i64,
    pub tags_set: BTreeSet<String>,
    pub topic: String,
}

impl SubscriptionData {
    /// Parses a tag expression the way the broker does: `*`/empty means all; otherwise split
    /// on `||`, trim, drop empties, and keep each tag with its hash code.
    pub fn from_tag_expression(
        topic: impl Into<String>,
        expression: &str,
        sub_version: i64,
    ) -> Self {
        let mut data = Self {
            topic: topic.into(),
            sub_version,
            expression_type: Some(expression_type::TAG.to_owned()),
            ..Self::default()
        };
        let expression = expression.trim();
        if expression.is_empty() || expression == SUB_ALL {
            data.sub_string = SUB_ALL.to_owned();
            return data;
        }
        data.sub_string = expression.to_owned();
        for tag in expression
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            data.code_set.insert(java_string_hash(tag));
            data.tags_set.insert(tag.to_owned());
        }
        data
    }

    pub fn sql92(
        topic: impl Into<String>,
        expression: impl Into<String>,
        sub_version: i64,
    ) -> Self {
        Self {
            topic: topic.into(),
            sub_string: expression.into(),
            sub_version,
            expression_type: Some(expression_type::SQL92.to_owned()),
            ..Self::default()
        }
    }

    pub fn is_tag_type(&self) -> bool {
        expression_type::is_tag(self.expression_type.as_deref())
    }

    /// True for `*` tag subscriptions.
    pub fn matches_all(&self) -> bool {
        self.is_tag_type() && (self.sub_string == SUB_ALL || self.sub_string.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    pub group_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    pub consume_from_where: ConsumeFromWhere,
    pub consume_type: ConsumeType,
    pub group_name: String,
    pub message_model: MessageModel,
    pub subscription_data_set: Vec<SubscriptionData>,
    pub unit_mode: bool,
}

/// HEART_BEAT body. `clientID` keeps its capital `ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub consumer_data_set: Vec<ConsumerData>,
    pub heartbeat_fingerprint: i32,
    pub producer_data_set: Vec<ProducerData>,
    pub without_sub: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::fastjson;

    #[test]
    fn golden_producer_heartbeat_from_spec_4_1_parses() {
        let captured = br#"{"clientID":"10.1.5.9@40700#955220087822500","consumerDataSet":[],"heartbeatFingerprint":0,
 "producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"R01_producer_123"}],"withoutSub":false}"#;
        let data: HeartbeatData = fastjson::from_slice(captured, "HeartbeatData").unwrap();
        assert_eq!(data.client_id, "10.1.5.9@40700#955220087822500");
        assert_eq!(data.producer_data_set.len(), 2);
        assert_eq!(data.producer_data_set[1].group_name, "R01_producer_123");
    }

    #[test]
    fn producer_heartbeat_is_written_like_java() {
        let data = HeartbeatData {
            client_id: "10.1.5.9@40700#955220087822500".into(),
            producer_data_set: vec![ProducerData {
                group_name: "CLIENT_INNER_PRODUCER".into(),
            }],
            ..HeartbeatData::default()
        };
        assert_eq!(
            String::from_utf8(fastjson::to_vec(&data)).unwrap(),
            r#"{"clientID":"10.1.5.9@40700#955220087822500","consumerDataSet":[],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}"#
        );
    }

    #[test]
    fn tag_expression_parsing_matches_spec() {
        let sub = SubscriptionData::from_tag_expression("T", " TagA || TagB ||", 1);
        assert_eq!(sub.tags_set.iter().collect::<Vec<_>>(), ["TagA", "TagB"]);
        assert_eq!(
            sub.code_set.iter().copied().collect::<Vec<_>>(),
            [2_598_919, 2_598_920]
        );
        assert!(SubscriptionData::from_tag_expression("T", "*", 1).matches_all());
        assert!(SubscriptionData::from_tag_expression("T", "", 1).matches_all());
    }

    #[test]
    fn consumer_data_parses_4x_body() {
        let body = br#"{"clientID":"c","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"g","messageModel":"BROADCASTING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[],"subString":"*","subVersion":1,"tagsSet":[],"topic":"T"}],"unitMode":false}],"producerDataSet":[]}"#;
        let data: HeartbeatData = fastjson::from_slice(body, "HeartbeatData").unwrap();
        let consumer = &data.consumer_data_set[0];
        assert_eq!(consumer.message_model, MessageModel::Broadcasting);
        assert_eq!(
            consumer.consume_from_where,
            ConsumeFromWhere::ConsumeFromFirstOffset
        );
        assert!(consumer.subscription_data_set[0].is_tag_type());
    }
}
