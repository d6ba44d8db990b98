-- CF Messenger archive: every message once (by id), and a keyed token index for search.
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  room TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sender TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  ts INTEGER NOT NULL,
  day TEXT NOT NULL,
  UNIQUE (room, seq)
);
CREATE INDEX IF NOT EXISTS messages_day ON messages (day, room, seq);
CREATE TABLE IF NOT EXISTS message_terms (
  term TEXT NOT NULL,
  message_id TEXT NOT NULL,
  room TEXT NOT NULL,
  PRIMARY KEY (term, message_id)
);
