-- Projections carry the classification's verdict beside their numbers.
ALTER TABLE projections ADD COLUMN IF NOT EXISTS verdict VARCHAR;
