"""The Telegram channel: python-telegram-bot's `ExtBot` as a thin Bot API client.

Thin on purpose: it translates updates into engine events and delivers the engine's messages.
Conversation state, texts and every business decision are the engine's; PTB's Application,
ConversationHandler and persistence are not used.

```mermaid
sequenceDiagram
    participant T as Telegram
    participant A as TelegramChannel
    participant E as Engine
    participant O as Outbox sender
    alt long polling (default)
        A->>T: getUpdates(offset, timeout)
        T-->>A: updates
        A->>E: store_raw (inbox), each update of the batch
        A->>T: next getUpdates: offset confirms the stored batch
    else webhook (LAPORHAM_TELEGRAM_WEBHOOK_URL)
        T->>A: POST /telegram/webhook (secret header)
        A->>E: store_raw (inbox) before answering 200
    end
    A-->>E: handle(event) in the user's lane, in the background; replay_stored covers a crash
    O->>A: send(chat, message)
    A->>T: sendMessage / sendPhoto / sendDocument (rate limited)
```

One home per concern:

- channel.py: `TelegramChannel`, the ChannelAdapter, composed from the modules below;
- client.py: the `ExtBot` on PTB's `HTTPXRequest` (two pools: calls, long polls);
- inbound.py: update -> engine event (pure functions);
- outbound.py: texts, keyboards, splitting, rate limits, PTB errors as SendErrors;
- transport.py: start-up, long polling and the webhook route (receiving);
- (bot/engine/lanes.py): one background lane per user (each user's updates in order, users apart);
- media.py: downloads (getFile) and photos/documents sent.
"""

from bot.channels.telegram.channel import TelegramChannel
from bot.channels.telegram.outbound import (
    PRIVATE_ONLY,
    Limits,
    callback_data,
    contact_label,
    seconds,
    split_html,
    utf16_len,
)
from bot.channels.telegram.transport import SECRET_HEADER, WEBHOOK_PATH, TelegramConfigError

__all__ = [
    "PRIVATE_ONLY",
    "SECRET_HEADER",
    "WEBHOOK_PATH",
    "Limits",
    "TelegramChannel",
    "TelegramConfigError",
    "callback_data",
    "contact_label",
    "seconds",
    "split_html",
    "utf16_len",
]
