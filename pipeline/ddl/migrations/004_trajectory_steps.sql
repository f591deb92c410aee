-- Trajectories keyed by grid step, not year: a projection in compute multiples has no calendar year.
CREATE TABLE projection_trajectories_v4 (
    run_id VARCHAR,
    scenario VARCHAR,
    curve VARCHAR,
    step INTEGER,
    year DOUBLE,
    decades DOUBLE,
    frontier DOUBLE,
    meek DOUBLE,
    gap DOUBLE,
    gap_lo DOUBLE,
    gap_mid DOUBLE,
    gap_hi DOUBLE,
    PRIMARY KEY (run_id, scenario, curve, step)
);
INSERT INTO projection_trajectories_v4
    SELECT run_id, scenario, curve,
           CAST(row_number() OVER (PARTITION BY run_id, scenario, curve ORDER BY year) - 1 AS INTEGER),
           year, NULL, frontier, meek, gap, gap_lo, gap_mid, gap_hi
    FROM projection_trajectories;
DROP TABLE projection_trajectories;
ALTER TABLE projection_trajectories_v4 RENAME TO projection_trajectories;
