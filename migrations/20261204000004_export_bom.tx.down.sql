ALTER TABLE export DROP COLUMN truncated_cells;
ALTER TABLE export DROP COLUMN bom;
