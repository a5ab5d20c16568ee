"""All tables. Importing this package registers every table on `SQLModel.metadata`."""

from storage.models.broadcasts import Audience, Broadcast, BroadcastState
from storage.models.catalogue import (
    Action,
    Assignment,
    EvidenceRequirement,
    Measure,
    Period,
    Programme,
    Question,
)
from storage.models.coordination import ClosedWindow, Lease, UnreachableNumber
from storage.models.enums import (
    ActionLevel,
    InboxStatus,
    OutboxStatus,
    ProgrammeKind,
    QuestionKind,
    RegionKind,
    ReviewDecision,
    Role,
    SubmissionStatus,
)
from storage.models.messaging import ConversationState, InboxMessage, OutboxMessage
from storage.models.people import (
    TIMEZONES,
    ChannelIdentity,
    Contact,
    InviteAttempt,
    InviteCode,
    Office,
    Region,
)
from storage.models.recaps import RecapKind, RecapRequest, RecapState
from storage.models.reports import (
    Answer,
    AuditLog,
    EvidenceFile,
    ReviewEvent,
    Submission,
    SubmissionVersion,
)

__all__ = [
    "TIMEZONES",
    "Action",
    "ActionLevel",
    "Answer",
    "Assignment",
    "Audience",
    "AuditLog",
    "Broadcast",
    "BroadcastState",
    "ChannelIdentity",
    "ClosedWindow",
    "Contact",
    "ConversationState",
    "EvidenceFile",
    "EvidenceRequirement",
    "InboxMessage",
    "InboxStatus",
    "InviteAttempt",
    "InviteCode",
    "Lease",
    "Measure",
    "Office",
    "OutboxMessage",
    "OutboxStatus",
    "Period",
    "Programme",
    "ProgrammeKind",
    "Question",
    "QuestionKind",
    "RecapKind",
    "RecapRequest",
    "RecapState",
    "Region",
    "RegionKind",
    "ReviewDecision",
    "ReviewEvent",
    "Role",
    "Submission",
    "SubmissionStatus",
    "SubmissionVersion",
    "UnreachableNumber",
]
