//! Message filters for pulls: tag codes on the consume queue, SQL92 on properties
//! (spec semantics.md §8, remoting.md §7.12).

pub mod sql92;

use karman_protocol::body::SubscriptionData;
use karman_protocol::message::{MessageView, property};
use karman_store::MessageFilter;

use sql92::{Sql92, Sql92Error};

/// The filter of one pull, built from the consumer's subscription.
#[derive(Debug, Clone)]
pub enum SubscriptionFilter {
    /// `*`, or a retry topic (whose messages match every subscription).
    All,
    /// Tags: the consume queue's hash codes select candidates, then the record's TAGS is
    /// compared exactly, so a hash collision never reaches the consumer.
    Tags {
        codes: Vec<i64>,
        tags: Vec<String>,
    },
    Sql92(Box<Sql92>),
}

impl SubscriptionFilter {
    /// Builds the filter; an SQL92 expression that does not parse is an error saying where.
    pub fn new(subscription: &SubscriptionData) -> Result<Self, Sql92Error> {
        if !subscription.is_tag_type() {
            return Ok(Self::Sql92(Box::new(Sql92::parse(
                &subscription.sub_string,
            )?)));
        }
        if subscription.matches_all() {
            return Ok(Self::All);
        }
        Ok(Self::Tags {
            codes: subscription
                .code_set
                .iter()
                .map(|code| i64::from(*code))
                .collect(),
            tags: subscription.tags_set.iter().cloned().collect(),
        })
    }

    /// Whether a message with this tag code and record can match (used to wake held pulls
    /// only for messages they would return).
    pub fn matches(&self, tag_code: i64, record: &MessageView<'_>) -> bool {
        self.matches_tag_code(tag_code) && (!self.needs_record() || self.matches_record(record))
    }
}

impl MessageFilter for SubscriptionFilter {
    fn matches_tag_code(&self, tag_code: i64) -> bool {
        match self {
            Self::All | Self::Sql92(_) => true,
            Self::Tags { codes, .. } => codes.contains(&tag_code),
        }
    }

    fn needs_record(&self) -> bool {
        !matches!(self, Self::All)
    }

    fn matches_record(&self, record: &MessageView<'_>) -> bool {
        match self {
            Self::All => true,
            // A subscription built from hash codes alone (no tag strings) trusts the hash.
            Self::Tags { tags, .. } => {
                tags.is_empty()
                    || record
                        .property(property::TAGS)
                        .is_some_and(|tag| tags.iter().any(|t| t == tag))
            }
            Self::Sql92(filter) => filter.matches(|name| record.property(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filter_uses_hash_codes() {
        let sub = SubscriptionData::from_tag_expression("T", "TagA || TagB", 1);
        let filter = SubscriptionFilter::new(&sub).unwrap();
        assert!(filter.matches_tag_code(2_598_919));
        assert!(!filter.matches_tag_code(0));
        assert!(
            filter.needs_record(),
            "hash matches are confirmed on the record"
        );
    }

    #[test]
    fn hash_collisions_are_caught_on_the_record() {
        // "Aa" and "BB" have the same Java hash code.
        assert_eq!(
            karman_protocol::message::java_string_hash("Aa"),
            karman_protocol::message::java_string_hash("BB")
        );
        let filter =
            SubscriptionFilter::new(&SubscriptionData::from_tag_expression("T", "Aa", 1)).unwrap();
        let record = |tag: &str| {
            let props = format!("TAGS\u{1}{tag}\u{2}");
            let mut out = Vec::new();
            karman_protocol::message::StoredRecord {
                topic: "T",
                queue_id: 0,
                flag: 0,
                queue_offset: 0,
                physical_offset: 0,
                sys_flag: 0,
                born_timestamp_ms: 0,
                born_host: "127.0.0.1:1".parse().unwrap(),
                store_timestamp_ms: 0,
                store_host: "127.0.0.1:2".parse().unwrap(),
                reconsume_times: 0,
                prepared_transaction_offset: 0,
                body: b"x",
                properties: props.as_bytes(),
            }
            .encode(&mut out)
            .unwrap();
            out
        };
        let aa = record("Aa");
        let bb = record("BB");
        let code = i64::from(karman_protocol::message::java_string_hash("Aa"));
        assert!(filter.matches(code, &MessageView::parse(&aa).unwrap()));
        assert!(!filter.matches(code, &MessageView::parse(&bb).unwrap()));
    }

    #[test]
    fn star_matches_untagged_messages() {
        let filter =
            SubscriptionFilter::new(&SubscriptionData::from_tag_expression("T", "*", 1)).unwrap();
        assert!(filter.matches_tag_code(0));
    }

    #[test]
    fn bad_sql_is_refused_at_build_time() {
        let sub = SubscriptionData::sql92("T", "a >", 1);
        assert!(SubscriptionFilter::new(&sub).is_err());
    }
}
