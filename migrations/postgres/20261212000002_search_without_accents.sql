-- Search words are now folded to their letters without accents (Müller →
-- muller) on both engines: every asset is indexed again at the next start.
UPDATE assets SET search_text = NULL;
