"""Images, the model input, architectures, artifacts, the classifier and Grad-CAM."""
