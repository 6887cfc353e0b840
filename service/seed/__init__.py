"""The seed study: the survey, codebook and synthetic responses of Lefevre et al. (2017)."""
