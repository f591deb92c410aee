-- Inference-scaling observations: samples per task (pass@k curves against log10 k).
ALTER TABLE observations ADD COLUMN IF NOT EXISTS inference_budget DOUBLE;
