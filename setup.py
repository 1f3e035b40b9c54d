from setuptools import find_packages, setup

setup(name='plugins', version='0.1.0', packages=find_packages(include=['plugins', 'plugins.*']),
      python_requires='>=3.9')
