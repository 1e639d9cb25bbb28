//! Message filters for pulls: tag codes on the consume queue, SQL92 on properties
//! (spec semantics.md §8, remoting.md §7.12).

pub mod sql92;

use karman_protocol::body::SubscriptionData;
use karman_protocol::message::MessageView;
use karman_store::MessageFilter;

use sql92::{Sql92, Sql92Error};

/// The filter of one pull, built from the consumer's subscription.
#[derive(Debug, Clone)]
pub enum SubscriptionFilter {
    /// `*`, or a retry topic (whose messages match every subscription).
    All,
    /// Tag hash codes from the subscription's `codeSet`. A hash match may still be a
    /// collision; clients re-check the tag string, as RocketMQ's do.
    Tags(Vec<i64>),
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
        Ok(Self::Tags(
            subscription
                .code_set
                .iter()
                .map(|code| i64::from(*code))
                .collect(),
        ))
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
            Self::Tags(codes) => codes.contains(&tag_code),
        }
    }

    fn needs_record(&self) -> bool {
        matches!(self, Self::Sql92(_))
    }

    fn matches_record(&self, record: &MessageView<'_>) -> bool {
        match self {
            Self::Sql92(filter) => filter.matches(|name| record.property(name)),
            _ => true,
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
        assert!(!filter.needs_record());
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
