//! How a virtual link crosses the substrate: the tunnel kind, the backend that
//! builds tunnel ends, and the VNI a link's ends agree on.

use serde::{Deserialize, Serialize};

/// How a virtual link's frames cross the substrate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// Ethernet over UDP (RFC 7348); the default, present on this kernel.
    #[default]
    Vxlan,
    /// Ethernet over GRE, what the paper used ("EGRE").
    Gretap,
    /// Ethernet over Geneve (RFC 8926).
    Geneve,
    /// Plain GRE and IP-in-IP: what a VLSP object may ask for, but they
    /// carry IP packets, not the Ethernet frames a bridge needs.
    Gre,
    Ipip,
}

impl TunnelKind {
    /// The kernel link kind, as `ip link add ... type <kind>` spells it.
    pub fn kernel_kind(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Gretap => "gretap",
            Self::Geneve => "geneve",
            Self::Gre => "gre",
            Self::Ipip => "ipip",
        }
    }

    /// Whether the tunnel carries Ethernet frames (can join a bridge).
    pub fn carries_ethernet(self) -> bool {
        matches!(self, Self::Vxlan | Self::Gretap | Self::Geneve)
    }
}

impl std::fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kernel_kind())
    }
}

/// Which mechanism creates tunnel ends.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In-process rtnetlink requests.
    #[default]
    Netlink,
    /// Shell scripts calling `ip`, as the paper did.
    Script,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Netlink => "netlink",
            Self::Script => "script",
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "netlink" => Ok(Self::Netlink),
            "script" => Ok(Self::Script),
            _ => Err(format!(
                "unknown backend {s:?}: use \"netlink\" or \"script\""
            )),
        }
    }
}

/// Maps a 64-bit VLink ID to a VNI in 1..=0xFFFFFF.
pub fn vni_for(vlink_id: u64) -> u32 {
    (1 + vlink_id % 0x00ff_ffff) as u32
}
