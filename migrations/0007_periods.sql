-- When the flags of a rollout's live phase took effect (the write that set
-- them was confirmed): the watcher never judges a phase on data from
-- before it. NULL in rows written before it was kept (the bake start is
-- used instead).
ALTER TABLE rollouts ADD COLUMN live_since TEXT;
