using System.Buffers.Binary;
using System.Text;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// The few protobuf wire-format writes a SentencePiece ModelProto needs: varint (wire type 0), fixed32 float
/// (wire type 5) and length-delimited strings and sub-messages (wire type 2). A key is (field &lt;&lt; 3) | wire type.
/// Hand-written so Lowbit does not take a protobuf dependency for one message type.
/// </summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _stream = new();

    public void WriteVarint(int field, long value)
    {
        WriteKey(field, 0);
        // proto2 int32 fields sign-extend negative values to 64 bits (ten bytes), as protoc does.
        WriteRawVarint((ulong)value);
    }

    public void WriteBool(int field, bool value) => WriteVarint(field, value ? 1 : 0);

    public void WriteFloat(int field, float value)
    {
        WriteKey(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        _stream.Write(bytes);
    }

    public void WriteString(int field, string value) => WriteBytes(field, Encoding.UTF8.GetBytes(value));

    public void WriteBytes(int field, ReadOnlySpan<byte> value)
    {
        WriteKey(field, 2);
        WriteRawVarint((ulong)value.Length);
        _stream.Write(value);
    }

    public void WriteMessage(int field, ProtoWriter message) => WriteBytes(field, message.ToArray());

    public byte[] ToArray() => _stream.ToArray();

    private void WriteKey(int field, int wireType) => WriteRawVarint((ulong)((field << 3) | wireType));

    private void WriteRawVarint(ulong value)
    {
        while (value >= 0x80)
        {
            _stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _stream.WriteByte((byte)value);
    }
}
