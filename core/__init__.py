"""DefectLens core: the product's logic. Never imports streamlit."""
