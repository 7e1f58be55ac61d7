-- Shared by bench-app (a burrow migration, through app_files!) and bench-bare (run at
-- start on an empty database): the same table and the same 12 rows in both. The texts
-- hold characters the template must escape (<, >, &, ", ').
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
INSERT INTO entries (name, message) VALUES
    ('Mallory', 'Nice page <script>alert("hi")</script> & thanks'),
    ('Alice', 'First visit. The tea was excellent & the view even better.'),
    ('Bob', 'Came for the <b>bold</b> claims, stayed for the "quotes".'),
    ('Carol', 'Signed on a Tuesday; it''s raining again.'),
    ('Dave', 'Ten out of ten, would sign again -> soon.'),
    ('Eve', 'I read every entry. Every single one.'),
    ('Frank', 'Greetings from the lighthouse at the end of the road.'),
    ('Grace', 'Found a bug: 1 < 2 && 3 > 2 is still true.'),
    ('Heidi', 'The guestbook is the best part of the web.'),
    ('Ivan', 'Привет from far away, with ümlauts and emoji 🦀.'),
    ('Judy', 'Short and sweet.'),
    ('Niaj', 'A longer message to make the page a little heavier: lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.');
