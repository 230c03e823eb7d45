"""Builders of the assets the CDK stack deploys: Lambda layers and the function code's excludes."""
