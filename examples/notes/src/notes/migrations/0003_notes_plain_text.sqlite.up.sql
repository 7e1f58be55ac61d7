-- Notes are plain text: control characters other than tab and line breaks are stripped on
-- input since this release. Two of them (\x02, \x03) mark search matches, so notes stored
-- before could show as `<mark>` tags in search results; remove them. The update trigger
-- keeps the search index in step.
UPDATE notes
SET title = replace(replace(title, char(2), ''), char(3), ''),
    content = replace(replace(content, char(2), ''), char(3), '')
WHERE instr(title, char(2)) OR instr(title, char(3))
   OR instr(content, char(2)) OR instr(content, char(3));
