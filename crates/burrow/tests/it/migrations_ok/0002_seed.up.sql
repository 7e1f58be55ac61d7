INSERT INTO items (name) VALUES ('first');
