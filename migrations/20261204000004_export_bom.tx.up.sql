-- Exports that open right where the users are: a CSV starts with a UTF-8
-- BOM unless asked not to (Excel on Korean Windows reads BOM-less UTF-8 as
-- CP949), and an XLSX records how many cells it cut at Excel's limit.
ALTER TABLE export ADD COLUMN bom boolean NOT NULL DEFAULT true;
ALTER TABLE export ADD COLUMN truncated_cells bigint NOT NULL DEFAULT 0;
