-- Projections of fitted series start where their data end (start_year), and carry the ratio frontier/meek
-- and the lag of the meek actor in months, per trajectory step and at the trajectory's end (with a band).
ALTER TABLE projections ADD COLUMN IF NOT EXISTS start_year DOUBLE;
ALTER TABLE projections ADD COLUMN IF NOT EXISTS end_year DOUBLE;
ALTER TABLE projections ADD COLUMN IF NOT EXISTS ratio_end DOUBLE;
ALTER TABLE projections ADD COLUMN IF NOT EXISTS lag_months_end DOUBLE;
ALTER TABLE projections ADD COLUMN IF NOT EXISTS lag_months_end_lo DOUBLE;
ALTER TABLE projections ADD COLUMN IF NOT EXISTS lag_months_end_hi DOUBLE;
ALTER TABLE projection_trajectories ADD COLUMN IF NOT EXISTS ratio DOUBLE;
ALTER TABLE projection_trajectories ADD COLUMN IF NOT EXISTS lag_months DOUBLE;
