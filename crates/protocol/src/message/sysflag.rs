//! Flag bits: MessageSysFlag (spec §5.3), PullSysFlag (§3.2), TopicSysFlag and PermName (§4.4).

/// MessageSysFlag: bits of a message's `sysFlag`.
pub mod message {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
    pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
    pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
    pub const TRANSACTION_MASK: i32 = 0xC;
    pub const BORNHOST_V6: i32 = 0x10;
    pub const STOREHOST_V6: i32 = 0x20;
    pub const NEED_UNWRAP: i32 = 0x40;
    pub const INNER_BATCH: i32 = 0x80;
    pub const COMPRESSION_MASK: i32 = 0x700;
    pub const COMPRESSION_LZ4: i32 = 0x100;
    pub const COMPRESSION_ZSTD: i32 = 0x200;
    pub const COMPRESSION_ZLIB: i32 = 0x300;

    /// The transaction type bits of a sysFlag.
    pub const fn transaction_type(sys_flag: i32) -> i32 {
        sys_flag & TRANSACTION_MASK
    }

    /// Replaces the transaction type bits.
    pub const fn with_transaction_type(sys_flag: i32, kind: i32) -> i32 {
        (sys_flag & !TRANSACTION_MASK) | (kind & TRANSACTION_MASK)
    }
}

/// PullSysFlag: bits of a pull request's `sysFlag`.
pub mod pull {
    pub const COMMIT_OFFSET: i32 = 0x1;
    pub const SUSPEND: i32 = 0x2;
    pub const SUBSCRIPTION: i32 = 0x4;
    pub const CLASS_FILTER: i32 = 0x8;
    pub const LITE_PULL: i32 = 0x10;

    /// Builds the flag the way Java's `PullSysFlag.buildSysFlag` does.
    pub const fn build(
        commit_offset: bool,
        suspend: bool,
        subscription: bool,
        class_filter: bool,
    ) -> i32 {
        (if commit_offset { COMMIT_OFFSET } else { 0 })
            | (if suspend { SUSPEND } else { 0 })
            | (if subscription { SUBSCRIPTION } else { 0 })
            | (if class_filter { CLASS_FILTER } else { 0 })
    }
}

/// TopicSysFlag bits.
pub mod topic {
    pub const UNIT: i32 = 0x1;
    pub const UNIT_SUB: i32 = 0x2;
}

/// PermName bits of topics and brokers.
pub mod perm {
    pub const PRIORITY: i32 = 0x8;
    pub const READ: i32 = 0x4;
    pub const WRITE: i32 = 0x2;
    pub const INHERIT: i32 = 0x1;
    pub const READ_WRITE: i32 = READ | WRITE;

    pub const fn is_readable(perm: i32) -> bool {
        perm & READ == READ
    }

    pub const fn is_writeable(perm: i32) -> bool {
        perm & WRITE == WRITE
    }

    pub const fn is_inherited(perm: i32) -> bool {
        perm & INHERIT == INHERIT
    }

    /// `PermName.perm2String`: "RW-", "R--", ...
    pub fn to_display(perm: i32) -> String {
        let mut out = String::with_capacity(3);
        out.push(if is_readable(perm) { 'R' } else { '-' });
        out.push(if is_writeable(perm) { 'W' } else { '-' });
        out.push(if is_inherited(perm) { 'X' } else { '-' });
        out
    }
}
