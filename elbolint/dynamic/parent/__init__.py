"""The parent side of dynamic mode, in the elbolint process (never imports TensorFlow): the settings,
the workers it starts (harness), which run may judge which finding (attribution) and the verdicts
turned into what the user reads (report)."""
