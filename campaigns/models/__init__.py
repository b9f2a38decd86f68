"""The tortoise models of the service, one module per domain area."""

from campaigns.models.audit import AuditEvent
from campaigns.models.calls import CallOutcome, CallStatus, CallTask, CampaignCaller
from campaigns.models.messaging import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    DeliveryReceipt,
    Message,
    MessagePart,
    MessageStatus,
    Template,
    TemplateVersion,
)
from campaigns.models.registry import Audience, Membership, OptOut, Person
from campaigns.models.replies import (
    Escalation,
    EscalationNote,
    EscalationStatus,
    InboundPart,
    Reply,
    ReplyLabel,
)
from campaigns.models.staff import ApiToken, Role, Staff

__all__ = [
    "ApiToken",
    "Audience",
    "AuditEvent",
    "CallOutcome",
    "CallStatus",
    "CallTask",
    "Campaign",
    "CampaignCaller",
    "CampaignRun",
    "CampaignStatus",
    "DeliveryReceipt",
    "Escalation",
    "EscalationNote",
    "EscalationStatus",
    "InboundPart",
    "Membership",
    "Message",
    "MessagePart",
    "MessageStatus",
    "OptOut",
    "Person",
    "Reply",
    "ReplyLabel",
    "Role",
    "Staff",
    "Template",
    "TemplateVersion",
]
