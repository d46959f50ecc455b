-- Consecutive breaching evaluations per guardrail (JSON: name → count), so a
-- restart resumes the count instead of starting over.
ALTER TABLE rollouts ADD COLUMN streaks TEXT;
