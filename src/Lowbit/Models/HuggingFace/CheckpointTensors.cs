using System.Text.Json;
using Lowbit.Models.IO;
using Lowbit.Models.Safetensors;
using Lowbit.Tensors;

namespace Lowbit.Models.HuggingFace;

/// <summary>
/// The weights of a Hugging Face model directory: either one <c>model.safetensors</c> or
/// <c>model.safetensors.index.json</c> whose "weight_map" sends each tensor name to a shard file.
/// Every file is memory-mapped; tensors returned are views valid while this object is open.
/// </summary>
public sealed class CheckpointTensors : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> _files = [];
    private readonly Dictionary<string, SafetensorsFile> _fileOf = [];
    private Dictionary<string, string>? _metadata;
    private readonly bool _hugePages;

    /// <param name="hugePages">Copy the safetensors files into huge pages instead of mapping them
    /// (<see cref="WeightMemory.HugePages"/>).</param>
    public CheckpointTensors(string modelDir, bool hugePages = false)
    {
        _hugePages = hugePages;
        Directory = System.IO.Path.GetFullPath(modelDir);
        if (!System.IO.Directory.Exists(Directory))
            throw new DirectoryNotFoundException($"Model directory {Directory} does not exist.");
        try
        {
            string single = System.IO.Path.Combine(Directory, SingleFileName);
            string index = System.IO.Path.Combine(Directory, IndexFileName);
            if (File.Exists(single))
                OpenSingle(single);
            else if (File.Exists(index))
                OpenSharded(index);
            else
                throw new FileNotFoundException($"{Directory} has neither {SingleFileName} nor {IndexFileName}.", single);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Full path of the model directory.</summary>
    public string Directory { get; }

    /// <summary>The safetensors files opened, in the order first named.</summary>
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToList();

    public IEnumerable<string> Names => _fileOf.Keys;

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    /// <summary>The <c>__metadata__</c> entries of every file, merged (the first file to name a key wins).</summary>
    public IReadOnlyDictionary<string, string> Metadata
    {
        get
        {
            if (_metadata is null)
            {
                var merged = new Dictionary<string, string>();
                foreach (var file in _files)
                {
                    foreach (var (key, value) in file.Metadata)
                        merged.TryAdd(key, value);
                }

                _metadata = merged;
            }

            return _metadata;
        }
    }

    public SafetensorsTensorInfo GetInfo(string name) => FileOf(name).GetInfo(name);

    /// <summary>A view of the tensor, valid while this object is open.</summary>
    public Tensor Get(string name) => FileOf(name).GetTensor(name);

    /// <summary>The tensor, checked against the shape (and dtype, when given) the model expects;
    /// <paramref name="expectedBy"/> says where the expectation comes from, e.g.
    /// <c>config.json (hidden_size, intermediate_size)</c>.</summary>
    public Tensor Get(string name, ReadOnlySpan<int> expectedShape, string expectedBy, DType? expectedDType = null)
    {
        var file = FileOf(name);
        var info = file.GetInfo(name);
        if (!info.Shape.AsSpan().SequenceEqual(expectedShape) || (expectedDType is { } d && d != info.DType))
        {
            string expected = Shapes.Format(expectedShape) + (expectedDType is { } e ? $" {e}" : "");
            throw new InvalidDataException(
                $"{System.IO.Path.GetFileName(file.Path)}: \"{name}\" is {Shapes.Format(info.Shape)} {info.DType}; {expectedBy} expects {expected}");
        }
        return file.GetTensor(name);
    }

    public void Dispose()
    {
        foreach (var f in _files)
            f.Dispose();
        _files.Clear();
        _fileOf.Clear();
    }

    private SafetensorsFile FileOf(string name) =>
        _fileOf.TryGetValue(name, out var file) ? file
            : throw new InvalidDataException(
                $"{name} not found in {Directory} (searched {string.Join(", ", _files.Select(f => System.IO.Path.GetFileName(f.Path)))}).");

    private void OpenSingle(string path)
    {
        var file = new SafetensorsFile(path, _hugePages);
        _files.Add(file);
        foreach (string name in file.Names)
            _fileOf[name] = file;
    }

    private void OpenSharded(string indexPath)
    {
        var shards = new Dictionary<string, SafetensorsFile>();
        foreach (var (name, shard) in ReadWeightMap(indexPath))
        {
            if (!shards.TryGetValue(shard, out var file))
            {
                string shardPath = System.IO.Path.Combine(Directory, shard);
                if (!File.Exists(shardPath))
                    throw new FileNotFoundException($"{indexPath}: shard {shard} (holding \"{name}\") does not exist.", shardPath);
                file = new SafetensorsFile(shardPath, _hugePages);
                _files.Add(file);
                shards[shard] = file;
            }
            if (!file.Contains(name))
                throw new InvalidDataException($"{indexPath}: \"{name}\" is mapped to {shard}, which has no such tensor.");
            _fileOf[name] = file;
        }
    }

    private static List<(string Name, string Shard)> ReadWeightMap(string indexPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{indexPath}: not valid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: no \"weight_map\" object.");
            var entries = new List<(string, string)>();
            foreach (var p in map.EnumerateObject())
            {
                string? shard = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : null;
                // A shard is a file name in the model directory; anything else could point outside it.
                if (string.IsNullOrEmpty(shard) || shard != System.IO.Path.GetFileName(shard))
                    throw new InvalidDataException($"{indexPath}: \"{p.Name}\" maps to {p.Value}, which is not a file name in the model directory.");
                entries.Add((p.Name, shard));
            }
            return entries;
        }
    }
}
