"""Gossip layer of faultproof: libp2p GossipSub for agents and oracles, built once.

Public API: GossipNode, GossipMessage, Subscription, TopicPolicy, GossipSettings, Regossiper,
and the topic names of DESIGN §7. Everything else in this package is internal. This package
carries bytes; it must never decode claims or vote batches (that belongs to the protocol core).
"""

from faultproof.gossip.node import GossipMessage, GossipNode, Subscription
from faultproof.gossip.policy import TopicPolicy
from faultproof.gossip.regossip import Regossiper
from faultproof.gossip.settings import GossipSettings

CLAIMS_TOPIC = "/faultproof/1/claims"
VOTES_TOPIC = "/faultproof/1/votes"

__all__ = [
    "CLAIMS_TOPIC",
    "VOTES_TOPIC",
    "GossipMessage",
    "GossipNode",
    "GossipSettings",
    "Regossiper",
    "Subscription",
    "TopicPolicy",
]
