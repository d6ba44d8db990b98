-- Migration number: 0001
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO users (name) VALUES ('alice');
