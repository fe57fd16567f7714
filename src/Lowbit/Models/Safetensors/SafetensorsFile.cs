using System.Buffers.Binary;
using Lowbit.Models.IO;
using Lowbit.Tensors;

namespace Lowbit.Models.Safetensors;

/// <summary>
/// A safetensors file, memory-mapped read-only. Layout: an 8-byte little-endian header length N, N bytes
/// of JSON header (see <see cref="SafetensorsHeader"/>), then the data section. <see cref="GetTensor"/>
/// returns views into the map, not copies: they are valid only while this file is open.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    // The reference implementation caps the header at 100 MB; a larger length means a corrupt file.
    private const long MaxHeaderLength = 100_000_000;

    private readonly MappedFile _file;
    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;
    private readonly long _dataStart;

    /// <param name="hugePages">Copy the file into huge pages instead of mapping it (<see cref="WeightMemory.HugePages"/>).</param>
    public SafetensorsFile(string path, bool hugePages = false)
    {
        _file = new MappedFile(path, hugePages);
        try
        {
            if (_file.Length < 8)
                throw new InvalidDataException($"{Path}: {_file.Length} bytes is too short for a safetensors file (an 8-byte header length comes first).");
            long headerLength = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(_file.Bytes(0, 8)), long.MaxValue);
            if (headerLength > _file.Length - 8)
                throw new InvalidDataException($"{Path}: header length {headerLength} runs past the end of the file ({_file.Length} bytes).");
            if (headerLength > MaxHeaderLength)
                throw new InvalidDataException($"{Path}: header length {headerLength} is over the 100 MB limit.");
            _dataStart = 8 + headerLength;

            var (tensors, metadata) = SafetensorsHeader.Parse(Path, _file.Bytes(8, (int)headerLength).ToArray(), _file.Length - _dataStart);
            _byName = new Dictionary<string, SafetensorsTensorInfo>(tensors.Count);
            foreach (var t in tensors)
            {
                if (!_byName.TryAdd(t.Name, t))
                    throw new InvalidDataException($"{Path}: tensor \"{t.Name}\" appears twice in the header.");
            }
            Tensors = tensors;
            Metadata = metadata;
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    /// <summary>Full path of the file.</summary>
    public string Path => _file.Path;

    /// <summary>Entries in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    public IEnumerable<string> Names => Tensors.Select(t => t.Name);

    /// <summary>The header's "__metadata__" map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafetensorsTensorInfo GetInfo(string name) =>
        _byName.TryGetValue(name, out var info) ? info
            : throw new InvalidDataException($"{Path}: no tensor \"{name}\".");

    /// <summary>A view of the tensor's bytes in the map; valid while this file is open.</summary>
    public Tensor GetTensor(string name)
    {
        var info = GetInfo(name);
        return Tensor.View(_file.Pointer + (nint)(_dataStart + info.DataBegin), info.DType, info.Shape);
    }

    public void Dispose() => _file.Dispose();
}
