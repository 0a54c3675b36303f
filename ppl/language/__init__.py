"""The modelling language: nodes and their constructors, distribution specs, m.latent / m.observe, compile's options."""
