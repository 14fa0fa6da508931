"""A PEP 517 build backend for gmemfs-testing, standard library only, so that
``pip install ./python`` works without an index (no setuptools or wheel to fetch).

It builds a pure-Python wheel of the ``gmemfs_testing`` package with the metadata and the
pytest11 entry point of pyproject.toml, and an sdist of this directory.
"""
import base64
import hashlib
import os
import tarfile
import zipfile

try:
    import tomllib
except ImportError:        # Python < 3.11: the few fields needed, read by hand
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = 'gmemfs_testing'


def _project():
    path = os.path.join(HERE, 'pyproject.toml')
    if tomllib is not None:
        with open(path, 'rb') as f:
            return tomllib.load(f)['project']
    project, section = {'entry-points': {'pytest11': {}}}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith('['):
                section = line.strip('[]')
            elif '=' in line and not line.startswith('#'):
                key, value = (part.strip() for part in line.split('=', 1))
                value = value.strip('"')
                if section == 'project':
                    project[key] = value
                elif section == 'project.entry-points.pytest11':
                    project['entry-points']['pytest11'][key] = value
    return project


def _names(project):
    return project['name'].replace('-', '_'), project['version']


def _metadata(project):
    return (f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
            f"Summary: {project.get('description', '')}\nRequires-Python: {project.get('requires-python', '>=3.9')}\n")


def _entry_points(project):
    text = ''
    for group, points in project.get('entry-points', {}).items():
        text += f'[{group}]\n' + ''.join(f'{k} = {v}\n' for k, v in points.items())
    return text


def _dist_info_files(project):
    return {
        'METADATA': _metadata(project),
        'WHEEL': 'Wheel-Version: 1.0\nGenerator: gmemfs build_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
        'entry_points.txt': _entry_points(project),
    }


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project = _project()
    name, version = _names(project)
    dist_info = f'{name}-{version}.dist-info'
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    for file, text in _dist_info_files(project).items():
        with open(os.path.join(metadata_directory, dist_info, file), 'w') as f:
            f.write(text)
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    name, version = _names(project)
    wheel = f'{name}-{version}-py3-none-any.whl'
    dist_info = f'{name}-{version}.dist-info'
    files = []
    for file in sorted(os.listdir(os.path.join(HERE, PACKAGE))):
        if file.endswith('.py'):
            with open(os.path.join(HERE, PACKAGE, file), 'rb') as f:
                files.append((f'{PACKAGE}/{file}', f.read()))
    files += [(f'{dist_info}/{file}', text.encode()) for file, text in _dist_info_files(project).items()]
    record = ''
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), 'w', zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
            record += f'{path},sha256={digest},{len(data)}\n'
        record += f'{dist_info}/RECORD,,\n'
        z.writestr(f'{dist_info}/RECORD', record)
    return wheel


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    name, version = _names(project)
    base = f'{name}-{version}'
    with tarfile.open(os.path.join(sdist_directory, base + '.tar.gz'), 'w:gz') as t:
        for file in ['pyproject.toml', 'build_backend.py']:
            t.add(os.path.join(HERE, file), f'{base}/{file}')
        for file in sorted(os.listdir(os.path.join(HERE, PACKAGE))):
            if file.endswith('.py'):
                t.add(os.path.join(HERE, PACKAGE, file), f'{base}/{PACKAGE}/{file}')
        info = tarfile.TarInfo(f'{base}/PKG-INFO')
        data = _metadata(project).encode()
        info.size = len(data)
        import io
        t.addfile(info, io.BytesIO(data))
    return base + '.tar.gz'
