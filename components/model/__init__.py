"""A model service on the cluster: its image where the cluster can pull it (``image.ModelImage``) and its
hardened, scalable Deployment with everything around it (``deployment.ModelDeployment``)."""
