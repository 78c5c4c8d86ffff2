"""Trained models: the library in storage, export as DRoA imports it, and the DeepRacer on AWS client."""
