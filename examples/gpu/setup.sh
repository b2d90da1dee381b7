# Sourced by the device-slot scripts here, in the project's root on the device machine: unpacks what
# ../shared/device/pack.sh put in .device/ (deno, the Vulkan loader packages, deno's npm cache), points
# Vulkan at NVIDIA's driver, writes /tmp/deno.json (the repo's imports and compiler options only: no lock
# file, no tasks) and prints the GPU's name into "$OUT/$1".
for f in .device/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
mkdir -p /tmp/deno-bin
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.device/deno.xz'),open('/tmp/deno-bin/deno','wb'))"
chmod +x /tmp/deno-bin/deno
tar -xJf .device/dd.tar.xz -C /tmp
export PATH=/tmp/deno-bin:$PATH HOME=${HOME:-/tmp} DENO_DIR=/tmp/deno-dir DENO_NO_UPDATE_CHECK=1
if [[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export XDG_RUNTIME_DIR=/tmp/xdg
mkdir -p /tmp/xdg && chmod 700 /tmp/xdg
python3 -c "import json;c=json.load(open('deno.json'));json.dump({k:c[k] for k in ('imports','compilerOptions') if k in c},open('/tmp/deno.json','w'))"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sed 's/^/gpu: /' | tee "$OUT/$1"
